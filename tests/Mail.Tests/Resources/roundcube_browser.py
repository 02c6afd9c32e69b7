# Headless Chromium for the Roundcube scripts: the driver, and a login as a user does it.
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait
from selenium.webdriver.support import expected_conditions as EC


def start():
    options = webdriver.ChromeOptions()
    options.binary_location = '/usr/bin/chromium'
    for a in ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-proxy-server', '--no-first-run']:
        options.add_argument(a)
    driver = webdriver.Chrome(service=Service('/usr/bin/chromedriver'), options=options)
    return driver, WebDriverWait(driver, 30)


def login(driver, wait, url, user, password):
    driver.get(url)
    wait.until(EC.presence_of_element_located((By.ID, 'rcmloginuser'))).send_keys(user)
    driver.find_element(By.ID, 'rcmloginpwd').send_keys(password)
    driver.find_element(By.ID, 'rcmloginsubmit').click()
    wait.until(EC.presence_of_element_located((By.ID, 'messagelist')))
